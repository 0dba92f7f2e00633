"""Few-shot NAS with gradient matching (GM-NAS): a search flow that splits one supernet into a tree of
sub-supernets. ``gradient_matching`` (scores), ``partition`` (op groups, edge choice), ``tree`` (the split
tree and its JSON state), ``flow`` (warm-up, splits, children, selection), ``plot`` (the picture)."""

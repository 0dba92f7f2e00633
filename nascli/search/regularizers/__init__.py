"""Components that regularise the search (each module registers itself in COMPONENTS)."""

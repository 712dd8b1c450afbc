"""Services: the use cases of faena, written against ports only."""

"""Voice agent runtime: the one package shipped to every Lambda."""

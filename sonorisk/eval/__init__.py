"""sonorisk.eval"""

"""sonorisk.detector"""

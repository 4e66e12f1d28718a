"""sonorisk.tracking"""

"""sonorisk.data"""

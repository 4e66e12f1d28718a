"""sonorisk.serving"""

"""sonorisk.pipeline"""

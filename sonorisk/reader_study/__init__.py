"""sonorisk.reader_study"""

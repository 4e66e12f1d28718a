"""sonorisk.video_classifier"""

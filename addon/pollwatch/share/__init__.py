"""pollwatch.share"""

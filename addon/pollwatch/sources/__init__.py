"""pollwatch.sources"""

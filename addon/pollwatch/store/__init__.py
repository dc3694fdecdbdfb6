"""pollwatch.store"""

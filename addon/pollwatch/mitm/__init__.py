"""pollwatch.mitm"""

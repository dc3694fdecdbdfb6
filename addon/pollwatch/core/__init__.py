"""pollwatch.core"""

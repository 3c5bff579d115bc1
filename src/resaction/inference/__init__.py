"""resaction.inference"""

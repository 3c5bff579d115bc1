"""resaction.serve"""

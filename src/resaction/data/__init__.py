"""resaction.data"""

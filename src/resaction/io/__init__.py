"""resaction.io"""

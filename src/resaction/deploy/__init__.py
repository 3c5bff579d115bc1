"""resaction.deploy"""

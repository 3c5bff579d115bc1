"""resaction.engine"""

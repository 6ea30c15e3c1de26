"""Market-data ingestion: ITCH 5.0 day-file replay, MoldUDP64 and SoupBinTCP transports, a test feed.

The decoding and the book are the kernel's (``riskcore.Book``); these modules
move bytes to it from files and sockets.
"""

"""Embedded market data (SPY, QQQ, VIX, 13-week T-bill yield) and its loader."""

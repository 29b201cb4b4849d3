"""Evidence for auditors: the quarterly compliance report, and later the sealed package."""

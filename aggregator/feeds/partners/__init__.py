"""Partner parsers: what no mapping can express, one module per partner, same shape as a format."""

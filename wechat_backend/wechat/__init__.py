"""WeChat glue: one module per platform concept (callback, replies, XML guard, API, OAuth, token)."""

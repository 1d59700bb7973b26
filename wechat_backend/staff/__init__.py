"""The staff side: accounts and their two-factor login, what each role may do and see (``scope``),
county settings, opening archives, the inbox and the posters."""

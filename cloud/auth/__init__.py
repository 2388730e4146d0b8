"""Who is asking, and what they may do: passwords, sessions, API tokens, roles and permissions."""

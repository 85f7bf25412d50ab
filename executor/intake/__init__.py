"""What comes in: uploads (archives, static checks, requirements) and event bodies."""

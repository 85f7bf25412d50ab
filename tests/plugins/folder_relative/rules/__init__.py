from .iban import iban_ok

RULES = [iban_ok]

def iban_ok(iban):
    return iban.startswith("FR")

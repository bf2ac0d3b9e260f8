# A module the functions share: a name starting with `_` answers no operation.
PRICES = {"tea": 450, "cake": 700}


def price_of(sku):
    return PRICES.get(sku, 100)

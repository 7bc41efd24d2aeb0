"""Research tools on the product: the realism study, the manipulation benchmark, the fork
cache. The product never imports them."""

"""orderhub: one REST API for orders and payments, with durable side effects."""

__version__ = "0.1.0"

"""The sandbox provider's client side: checkout pages and the Stripe.js-like confirm."""

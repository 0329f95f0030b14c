"""The payment provider stand-in: a Stripe-like charge API, its own service, so the shop's checkout
saga has a real remote dependency that can be slow, decline, fail, or lose a response."""

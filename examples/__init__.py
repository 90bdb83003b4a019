"""Example systems that meshscope observes; not part of the product (nothing in meshscope imports them)."""

"""Lease stores: who owns which object, with fencing tokens (DESIGN §4)."""

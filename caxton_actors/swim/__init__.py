"""The SWIM protocol with Lifeguard, as pure state machines.

Nothing here opens a socket, reads a clock or draws a random number of its own:
inputs are decoded messages, the current time and an RNG given at construction;
outputs are effects (messages to send, membership events) and the next time a
component wants to be woken. Actors wrap these for the real network; the
simulator wraps them for virtual time.
"""

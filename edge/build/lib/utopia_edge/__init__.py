"""Utopia edge agent and the client side of the event contract.

This distribution installs without Rust, Litestar or Textual so that it fits a camera-site box.
The core package (`utopia`) builds on its contract and settings modules.
"""

__version__ = "0.1.0"

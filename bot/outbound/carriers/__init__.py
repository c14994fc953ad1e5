"""Carrier adapters behind one seam (``base.Carrier``): the sandbox (default; nothing leaves the
machine), Twilio, Alibaba Cloud and Tencent Cloud."""

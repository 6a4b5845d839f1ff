"""
Delivery Status Notifications: the RFC 3461 requests (L{pymta.dsn.params})
and the RFC 3464 reports (L{pymta.dsn.report}).  See docs/queue.md, "Bounces".
"""

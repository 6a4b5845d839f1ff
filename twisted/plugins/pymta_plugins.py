"""twistd plugins of pymta (no __init__.py in twisted/ or twisted/plugins/)."""

from twisted.application.service import ServiceMaker

pymtaSend = ServiceMaker(
    "pymta send", "pymta.queue.tap", "pymta queue manager (qmail-send)", "pymta-send"
)
pymtaSmtpd = ServiceMaker(
    "pymta smtpd", "pymta.smtpd.tap", "pymta ESMTP server (qmail-smtpd)", "pymta-smtpd"
)
pymtaPop3d = ServiceMaker(
    "pymta pop3d", "pymta.pop3d.tap", "pymta POP3 server (qmail-pop3d)", "pymta-pop3d"
)
pymtaAll = ServiceMaker(
    "pymta", "pymta.tap", "pymta: smtpd, send and pop3d in one process", "pymta"
)

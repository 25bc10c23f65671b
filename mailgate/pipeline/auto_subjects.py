"""The subjects of bounces, auto-replies and list notices, in the customers' languages.

One row per subject shape a mail system or auto-responder writes. A pattern is
matched, case-insensitively, at the start of the subject, so a customer's sentence
that merely mentions "delivery failed" never matches, nor does a forward ("Fwd:
Undeliverable: …") or a reply to one.

``alone`` says how far a row is trusted:

- ``True``: only software writes this subject -- a whole fixed sentence (Exim's "Mail
  delivery failed: returning message to sender", qmail's "failure notice") or an
  auto-responder's prefix with its colon ("Automatic reply:", "Abwesenheitsnotiz:").
  The subject alone makes the mail automatic.
- ``False``: a person could write it too ("Undeliverable: parcel 7781", "Out of office
  today"). The row is a hint: the mail is automatic only with a second hint (the
  original message attached, ``flufl.bounce`` finding a failed recipient, a no-reply
  sender, an inbox-rule header...); see ``classify.py``.

Each row carries an example subject, and the tests run over the whole table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SubjectRow:
    language: str  # ISO 639-1 code of the subject's language
    kind: str  # the verdict kind: bounce, auto_reply or list
    pattern: str  # a regular expression, matched at the start, case-insensitively
    example: str  # a subject the row recognises, as the software writes it
    alone: bool  # the subject alone decides (True) or is one hint (False)
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.pattern, re.IGNORECASE))


_ = SubjectRow  # the rows below stay one line each where they can
B, A, L = "bounce", "auto_reply", "list"
END = r"\s*$"  # a whole-subject row: nothing may follow the fixed sentence

ROWS: tuple[SubjectRow, ...] = (
    # --- English bounces
    _("en", B, r"mail delivery failed\s*:\s*returning message to sender" + END,
      "Mail delivery failed: returning message to sender", True),  # Exim
    _("en", B, r"undelivered mail returned to sender" + END,
      "Undelivered Mail Returned to Sender", True),  # Postfix
    _("en", B, r"returned mail\s*:\s*(see transcript for details|user unknown|"
      r"service unavailable|host unknown|cannot send message)",
      "Returned mail: see transcript for details", True),  # Sendmail
    _("en", B, r"failure notice" + END, "failure notice", True),  # qmail
    _("en", B, r"delivery status notification \((failure|delay)\)",
      "Delivery Status Notification (Failure)", True),  # Gmail, Exchange
    _("en", B, r"warning\s*:\s*message \S+ delayed \d+ (minutes|hours|days)",
      "Warning: message 1uDnXq-0004aB-7c delayed 24 hours", True),  # Exim
    _("en", B, r"delivery notification\s*:\s*delivery has (failed|been delayed)",
      "Delivery Notification: Delivery has failed", True),  # Lotus Notes
    _("en", B, r"message you sent blocked by our bulk email filter" + END,
      "Message you sent blocked by our bulk email filter", True),  # Yahoo-style filters
    _("en", B, r"mail system error - returned mail" + END,
      "Mail System Error - Returned Mail", True),
    _("en", B, r"undeliverable( mail| message)?\s*:", "Undeliverable: Re: invoice 4471", False),
    _("en", B, r"undeliverable (mail|message)" + END, "Undeliverable mail", False),
    _("en", B, r"delivery failure\s*:", "DELIVERY FAILURE: User kim not listed in Domino Directory",
      False),  # Lotus Domino
    _("en", B, r"delivery (failure|status) notification" + END,
      "Delivery failure notification", False),  # content filters, antivirus gateways
    _("en", B, r"returned mail\b", "Returned mail", False),
    _("en", B, r"mail could not be delivered" + END, "Mail could not be delivered", False),
    _("en", B, r"message (could not be|not) delivered" + END, "Message not delivered", False),
    _("en", B, r"(mail )?delivery (has )?failed\s*:", "Delivery failed: your message", False),
    _("en", B, r"non-?delivery (report|notification)\b", "Non-delivery report: Re: order",
      False),
    _("en", B, r"(virus|content) (alert|detected|found|violation)\b",
      "Virus detected in a message you sent", False),  # antivirus gateways
    # --- English auto-replies
    _("en", A, r"automatic reply\s*:", "Automatic reply: Invoice question", True),  # Outlook
    _("en", A, r"auto[- ]?reply\s*:", "Auto-Reply: Your request", True),
    _("en", A, r"auto(matic)?[- ]?response\s*:", "Auto Response: Your request", True),
    _("en", A, r"out of (the )?office auto-?reply\s*:", "Out of Office AutoReply: Order", True),
    _("en", A, r"out of (the )?office\b", "Out of Office", False),  # vacation(1), Domino
    _("en", A, r"(i am|i'm) (currently )?(out of the office|away|on (vacation|leave))",
      "I am out of the office until Monday", False),
    _("en", A, r"(on )?(vacation|holiday|annual leave|leave)\s*:", "Vacation: Re: your question",
      False),
    _("en", A, r"auto:", "Auto: Invoice question", False),  # Lotus Notes
    _("en", A, r"away from (my|the) (desk|office)", "Away from my desk", False),
    # --- English list notices (replies to our mail from a list's robot)
    _("en", L, r"your message to \S.* awaits moderator approval",
      "Your message to Users awaits moderator approval", True),  # Mailman 2 and 3
    _("en", L, r"request to mailing list \S.* rejected",
      "Request to mailing list Users rejected", True),  # Mailman
    _("en", L, r"(message|post(ing)?) (to|for) \S.* (held|pending|rejected|has been rejected)",
      "Message to sales@googlegroups.example pending", False),  # Google Groups
    _("en", L, r"your message (to|for) (the )?(list|group) \S.* (was|has been) "
      r"(rejected|forwarded to the (moderator|editor)s?)",
      "Your message for list users has been forwarded to the moderator", True),
    _("en", L, r"the results of your email commands?" + END,
      "The results of your email commands", True),  # Mailman
    _("en", L, r"rejected posting to \S+@\S+", "Rejected posting to USERS@LISTS.EXAMPLE.EDU",
      True),  # LISTSERV
    _("en", L, r"majordomo results\b", "Majordomo results: Re: your request", True),
    # --- Indonesian
    _("id", A, r"balasan otomatis\s*:", "Balasan otomatis: Pertanyaan tagihan", True),
    _("id", A, r"(jawaban|respons) otomatis\s*:", "Jawaban otomatis: Pesanan 4471", True),
    _("id", A, r"(sedang )?(cuti|di luar kantor)\b", "Sedang cuti", False),
    _("id", B, r"pemberitahuan status pengiriman \((kegagalan|gagal|penundaan)\)",
      "Pemberitahuan Status Pengiriman (Kegagalan)", True),  # Gmail
    _("id", B, r"tidak terkirim\s*:", "Tidak terkirim: Tagihan Juli", False),  # Outlook
    _("id", B, r"(pesan|email|surat) (tidak|gagal) (dapat )?(terkirim|dikirim)",
      "Pesan tidak dapat dikirim", False),
    # --- German
    _("de", A, r"automatische antwort\s*:", "Automatische Antwort: Ihre Anfrage", True),
    _("de", A, r"abwesenheitsnotiz\s*:", "Abwesenheitsnotiz: Ihre Anfrage", True),  # Domino
    _("de", A, r"(abwesenheitsnotiz|abwesend|nicht im (büro|haus)|urlaub)\b",
      "Abwesend bis 4. August", False),
    _("de", B, r"(unzustellbar|nicht zustellbar)\s*:", "Unzustellbar: Ihre Anfrage", False),
    _("de", B, r"benachrichtigung zum zustellstatus \((fehler|fehlgeschlagen|verzögerung)\)",
      "Benachrichtigung zum Zustellstatus (Fehler)", True),  # Gmail
    _("de", B, r"(unzustellbare nachricht|fehler bei der zustellung|zustellung fehlgeschlagen)",
      "Unzustellbare Nachricht", False),
    # --- French
    _("fr", A, r"r[ée]ponse automatique\s*:", "Réponse automatique : Votre demande", True),
    _("fr", A, r"(absence du bureau|message d'absence|absent\(e\)? du bureau)\b",
      "Absence du bureau", False),
    _("fr", B, r"non remis\s*:", "Non remis : Votre demande", False),  # Exchange
    _("fr", B, r"(notification d'[ée]tat de (la )?(remise|distribution)|rapport de non-remise)",
      "Notification d'état de la remise (échec)", True),
    _("fr", B, r"([ée]chec de (la )?(remise|distribution)|message non distribu[ée])",
      "Échec de la remise du message", False),
    # --- Spanish
    _("es", A, r"respuesta autom[áa]tica\s*:", "Respuesta automática: Su consulta", True),
    _("es", A, r"(fuera de la oficina|ausente de la oficina|de vacaciones)\b",
      "Fuera de la oficina", False),
    _("es", B, r"no se puede entregar\s*:", "No se puede entregar: Su consulta", False),
    _("es", B, r"notificaci[óo]n de estado de (la )?entrega \((error|fallo|retraso)\)",
      "Notificación de estado de entrega (Error)", True),
    _("es", B, r"(mensaje no entregado|error de entrega|no entregado\s*:)",
      "Mensaje no entregado", False),
    # --- Dutch
    _("nl", A, r"automatisch antwoord\s*:", "Automatisch antwoord: Uw vraag", True),
    _("nl", A, r"(afwezig(heidsbericht|heidsmelding)?|niet op kantoor|met vakantie)\b",
      "Afwezigheidsbericht", False),
    _("nl", B, r"onbestelbaar\s*:", "Onbestelbaar: Uw vraag", False),  # Exchange
    _("nl", B, r"(bericht niet afgeleverd|niet-bezorgd|kan niet worden bezorgd)",
      "Bericht niet afgeleverd", False),
    # --- Portuguese
    _("pt", A, r"resposta autom[áa]tica\s*:", "Resposta automática: Seu pedido", True),
    _("pt", A, r"(aus[êe]ncia|ausente|fora do escrit[óo]rio|de f[ée]rias)\b",
      "Ausente do escritório", False),
    _("pt", B, r"(n[ãa]o entregue|n[ãa]o [ée] poss[íi]vel entregar)\s*:",
      "Não entregue: Seu pedido", False),  # Exchange
    _("pt", B, r"notifica[çc][ãa]o de status de entrega \((falha|atraso)\)",
      "Notificação de status de entrega (Falha)", True),
    _("pt", B, r"(mensagem n[ãa]o entregue|falha na entrega)", "Falha na entrega da mensagem",
      False),
)  # fmt: skip


def matching_row(subject: str) -> SubjectRow | None:
    """The row the subject matches, a row that decides alone before a hint."""
    subject = " ".join(subject.split())
    found = [row for row in ROWS if row.compiled.match(subject)]
    return next((row for row in found if row.alone), found[0] if found else None)

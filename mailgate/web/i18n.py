"""Strings of the customer-facing pages (portal, web form) in the routes' locales."""

from __future__ import annotations

from types import MappingProxyType

_EN = {
    "ticket": "Ticket",
    "status": "Status",
    "opened": "Opened",
    "you": "You",
    "support_team": "Support",
    "attachments": "Attachments",
    "reply_heading": "Add a reply",
    "reply_label": "Your message",
    "attach_label": "Attach files (optional)",
    "send": "Send",
    "reply_received": "Thank you. Your reply was received and will appear here in a moment.",
    "closed_note": "This ticket is closed. A reply opens a new request that refers to it.",
    "merged_note": "This request was merged with another one and continues there. Our "
    "answers come to you by mail; to add something, reply to one of our mails or write "
    "to {address}.",
    "merged_refused": "Your reply was not sent: this request was merged with another one. "
    "Copy your text below and send it to us by mail.",
    "not_found_title": "Not found",
    "not_found": "There is no such page. If you followed a link from one of our mails, "
    "please copy the whole link into the address bar.",
    "bad_request_title": "Bad request",
    "bad_request": "This request could not be understood. Please go back and try again.",
    "new_title": "Contact support",
    "new_intro": "Tell us what you need. You will get a confirmation by mail with a ticket "
    "code, and our answer by mail too.",
    "name_label": "Your name",
    "email_label": "Your email address",
    "subject_label": "Subject",
    "message_label": "Your message",
    "honeypot_label": "Leave this field empty",
    "submit": "Send request",
    "done_title": "Request received",
    "done": "Thank you. We have received your request and sent a confirmation to",
    "done_next": "Reply to that mail, or use the link in it, to add anything.",
    "error_heading": "Please check the form",
    "err_name": "Please tell us your name.",
    "err_email": "Please give a valid email address, such as name@example.com.",
    "err_subject": "Please give a subject.",
    "err_message": "Please write a message.",
    "err_reply": "Please write a reply or attach a file.",
    "err_too_large": "The message and its attachments are too large: at most {size} in all. "
    "Please attach fewer or smaller files (they have to be chosen again).",
    "err_files_again": "The files you chose were not sent ({names}): a browser cannot keep "
    "them on a form shown again, so please choose them again.",
    "done_code": "Your ticket code:",
    "done_waiting": "Your ticket code will appear here in a moment.",
    "err_rate": "Too many requests from you in a short time. Please try again later, "
    "or write to us by mail.",
    "err_expired": "This form has expired. Please send it again.",
    "err_unavailable": "We could not store your message just now. Nothing was sent; "
    "please try again in a minute.",
    "rate_title": "How did we do?",
    "rate_intro": "Was your request handled well? Choose one and, if you like, tell us why.",
    "rate_good": "Good",
    "rate_bad": "Bad",
    "rate_comment": "Comment (optional)",
    "rate_send": "Send rating",
    "rate_saved": "Thank you! Your rating was saved. You can change it until the ticket is closed.",
    "rate_current": "Your rating",
    "rate_closed": "This ticket is closed: its rating can no longer be changed.",
    "rate_conversation": "See the whole conversation",
    "err_rating_score": "Please choose Good or Bad.",
    "err_rating_comment": "The comment is too long: at most {count} characters.",
    "err_rating_ticket": "This ticket is closed: its rating can no longer be changed.",
}

_ID = {
    "ticket": "Tiket",
    "status": "Status",
    "opened": "Dibuka",
    "you": "Anda",
    "support_team": "Dukungan",
    "attachments": "Lampiran",
    "reply_heading": "Tambahkan balasan",
    "reply_label": "Pesan Anda",
    "attach_label": "Lampirkan berkas (opsional)",
    "send": "Kirim",
    "reply_received": "Terima kasih. Balasan Anda sudah kami terima dan akan segera "
    "tampil di sini.",
    "closed_note": "Tiket ini sudah ditutup. Balasan akan membuka permintaan baru yang "
    "merujuk ke tiket ini.",
    "merged_note": "Permintaan ini telah digabungkan dengan permintaan lain dan dilanjutkan "
    "di sana. Jawaban kami dikirim lewat email; untuk menambahkan sesuatu, balas salah satu "
    "email kami atau kirim email ke {address}.",
    "merged_refused": "Balasan Anda tidak terkirim: permintaan ini telah digabungkan dengan "
    "permintaan lain. Salin teks Anda di bawah dan kirimkan kepada kami lewat email.",
    "not_found_title": "Tidak ditemukan",
    "not_found": "Halaman ini tidak ada. Jika Anda membuka tautan dari email kami, "
    "salin seluruh tautan ke bilah alamat.",
    "bad_request_title": "Permintaan tidak valid",
    "bad_request": "Permintaan ini tidak dapat dipahami. Silakan kembali dan coba lagi.",
    "new_title": "Hubungi dukungan",
    "new_intro": "Ceritakan apa yang Anda perlukan. Anda akan menerima konfirmasi lewat "
    "email beserta kode tiket, dan jawaban kami juga lewat email.",
    "name_label": "Nama Anda",
    "email_label": "Alamat email Anda",
    "subject_label": "Subjek",
    "message_label": "Pesan Anda",
    "honeypot_label": "Biarkan kolom ini kosong",
    "submit": "Kirim permintaan",
    "done_title": "Permintaan diterima",
    "done": "Terima kasih. Permintaan Anda sudah kami terima dan konfirmasi telah dikirim ke",
    "done_next": "Balas email tersebut, atau gunakan tautan di dalamnya, untuk menambahkan "
    "informasi.",
    "error_heading": "Mohon periksa formulir",
    "err_name": "Mohon isi nama Anda.",
    "err_email": "Mohon isi alamat email yang valid, misalnya nama@contoh.com.",
    "err_subject": "Mohon isi subjek.",
    "err_message": "Mohon tulis pesan Anda.",
    "err_reply": "Mohon tulis balasan atau lampirkan berkas.",
    "err_too_large": "Pesan dan lampirannya terlalu besar: paling banyak {size} seluruhnya. "
    "Lampirkan lebih sedikit atau lebih kecil (berkas perlu dipilih lagi).",
    "err_files_again": "Berkas yang Anda pilih belum terkirim ({names}): peramban tidak "
    "dapat menyimpannya pada formulir yang ditampilkan lagi, jadi mohon pilih lagi.",
    "done_code": "Kode tiket Anda:",
    "done_waiting": "Kode tiket Anda akan tampil di sini sebentar lagi.",
    "err_rate": "Terlalu banyak permintaan dari Anda dalam waktu singkat. Silakan coba "
    "lagi nanti, atau kirim email kepada kami.",
    "err_expired": "Formulir ini sudah kedaluwarsa. Silakan kirim lagi.",
    "err_unavailable": "Pesan Anda belum dapat kami simpan. Tidak ada yang terkirim; "
    "silakan coba lagi sebentar lagi.",
    "rate_title": "Bagaimana layanan kami?",
    "rate_intro": "Apakah permintaan Anda ditangani dengan baik? Pilih salah satu dan, jika "
    "mau, ceritakan alasannya.",
    "rate_good": "Baik",
    "rate_bad": "Buruk",
    "rate_comment": "Komentar (opsional)",
    "rate_send": "Kirim penilaian",
    "rate_saved": "Terima kasih! Penilaian Anda sudah disimpan. Anda dapat mengubahnya "
    "sampai tiket ditutup.",
    "rate_current": "Penilaian Anda",
    "rate_closed": "Tiket ini sudah ditutup: penilaiannya tidak dapat diubah lagi.",
    "rate_conversation": "Lihat seluruh percakapan",
    "err_rating_score": "Mohon pilih Baik atau Buruk.",
    "err_rating_comment": "Komentar terlalu panjang: paling banyak {count} karakter.",
    "err_rating_ticket": "Tiket ini sudah ditutup: penilaiannya tidak dapat diubah lagi.",
}

LOCALES = MappingProxyType({"en": MappingProxyType(_EN), "id": MappingProxyType(_ID)})


def texts(locale: str) -> MappingProxyType:
    """The strings for ``locale``; English for a locale without a table."""
    return LOCALES.get(locale, LOCALES["en"])

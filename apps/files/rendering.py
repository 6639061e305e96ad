from apps.files.models import File


def render_file(file: File) -> dict:
    data = {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": file.created_at,
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
    }
    if file.expires_at is not None:
        data["expires_at"] = file.expires_at
    return data

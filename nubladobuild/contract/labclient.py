"""Run code in a kernel through a running lab's REST and websocket API.

This is the path a browser takes: ``POST /api/kernels`` starts the kernel
(the lab runs the kernelspec's argv, so the payload's wrapper), then the
kernel channels websocket carries ``execute_request`` and its replies.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
import uuid
from typing import Any


def _request(base: str, path: str, token: str, method: str = "GET",
             body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the lab under test
        f"{base}{path}", data=data, method=method,
        headers={"Authorization": f"token {token}",
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310 - our own URL
        raw = resp.read()
    return json.loads(raw) if raw else None


def _auth_header(token: str) -> list[str]:
    # A JupyterHub single-user server takes ?token= on a websocket only from
    # browsers (Sec-Fetch-Mode); the header works for every server.
    return [f"Authorization: token {token}"]


def execute_in_lab(base: str, token: str, kernel_name: str, code: str,
                   timeout: float = 180) -> dict[str, Any]:
    """Start ``kernel_name`` in the lab at ``base``, run ``code``, shut it down.

    Parameters
    ----------
    base
        The lab's URL (``http://127.0.0.1:PORT``).
    token
        The lab's token.
    kernel_name
        The kernelspec to start.
    code
        Python code to execute.
    timeout
        Seconds to wait for the kernel and the reply.

    Returns
    -------
    dict
        ``status`` (``ok`` or ``error``), ``stdout``, ``errors`` and
        ``seconds`` (start to reply).

    """
    import websocket  # websocket-client

    start = time.monotonic()
    kernel = _request(base, "/api/kernels", token, "POST", {"name": kernel_name})
    session = uuid.uuid4().hex
    url = (base.replace("http://", "ws://", 1)
           + f"/api/kernels/{kernel['id']}/channels?session_id={session}"
           + f"&token={token}")
    ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True,
                                     header=_auth_header(token))
    msg_id = uuid.uuid4().hex
    try:
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "username": "contract", "session": session,
                       "msg_type": "execute_request", "version": "5.3",
                       "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False,
                        "stop_on_error": True}}))
        stdout: list[str] = []
        errors: list[str] = []
        status = ""
        deadline = time.monotonic() + timeout
        idle = False
        while not (status and idle):
            if time.monotonic() > deadline:
                raise TimeoutError(f"kernel {kernel_name}: no reply in {timeout} s")
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = message["header"]["msg_type"]
            content = message["content"]
            if kind == "stream":
                stdout.append(content["text"])
            elif kind == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")
            elif kind == "execute_reply":
                status = content["status"]
            elif kind == "status" and content["execution_state"] == "idle":
                idle = True
    finally:
        ws.close()
        _request(base, f"/api/kernels/{kernel['id']}", token, "DELETE")
    return {"status": status, "stdout": "".join(stdout), "errors": errors,
            "seconds": time.monotonic() - start}


def run_in_lab_terminal(base: str, token: str, command: str,
                        timeout: float = 60) -> str:
    """Open a terminal in the lab at ``base``, type ``command``, return its line.

    The path a user takes: ``POST /api/terminals`` starts the server's
    terminal command (a login bash), the websocket carries keystrokes and
    output. ``command`` must print one line starting with ``NBTERM:``;
    that line (without the prefix) is returned.

    Raises
    ------
    TimeoutError
        When no such line arrives within ``timeout`` seconds.

    """
    import websocket  # websocket-client

    terminal = _request(base, "/api/terminals", token, "POST", {})
    url = (base.replace("http://", "ws://", 1)
           + f"/terminals/websocket/{terminal['name']}?token={token}")
    ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True,
                                     header=_auth_header(token))
    try:
        # Split the marker so that the echoed keystrokes never match.
        ws.send(json.dumps(["stdin", f"echo NB''TERM:{command}\r"]))
        output = ""
        deadline = time.monotonic() + timeout
        ws.settimeout(1)
        while time.monotonic() < deadline:
            try:
                message = json.loads(ws.recv())
            except websocket.WebSocketTimeoutException:
                continue
            if message[0] == "stdout":
                output += message[1]
                # Terminal control sequences may precede the line.
                found = re.search(r"NBTERM:([^\r\n]*)\r?\n", output)
                if found:
                    return found.group(1)
        raise TimeoutError(f"no NBTERM line from the lab terminal in {timeout} s; "
                           f"output:\n{output[-2000:]}")
    finally:
        ws.close()
        _request(base, f"/api/terminals/{terminal['name']}", token, "DELETE")

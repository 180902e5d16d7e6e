"""The local stack's ports when none is given: free, outside the kernel's ephemeral range, and one slice per test
process, so that parallel test processes never pick the same one between choosing it and binding it."""

from __future__ import annotations

import socket

from wikitide.localstack.services import free_port, port_slice


def test_each_test_process_has_a_slice_of_its_own_below_the_ephemeral_ports() -> None:
    slices = [port_slice(worker) for worker in ("", "gw0", "gw1", "gw2", "gw3", "gw4", "gw5", "gw6", "gw7")]
    assert all(len(set(a) & set(b)) == 0 for i, a in enumerate(slices) for b in slices[i + 1 :])
    assert all(s.start >= 1024 and s.stop <= 32768 for s in slices)  # Linux hands out 32768-60999 to clients
    assert port_slice("master") == port_slice("")


def test_a_free_port_is_in_this_process_slice_bindable_and_never_handed_out_twice() -> None:
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == 50
    assert all(port in port_slice() for port in ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[0]))
        sock.listen()

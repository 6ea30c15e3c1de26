# MoldUDP64 on a UDP socket, received in batches (recvmmsg) and applied to a
# riskcore Book in C. Network code lives here, in the service, never in the
# kernel: the kernel is reached through its .pxd (Book's state, decode_into).
from libc.stdint cimport uint8_t, uint64_t


cdef extern from "<sys/uio.h>" nogil:
    cdef struct iovec:
        void* iov_base
        size_t iov_len


cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t

    cdef struct msghdr:
        void* msg_name
        socklen_t msg_namelen
        iovec* msg_iov
        size_t msg_iovlen
        void* msg_control
        size_t msg_controllen
        int msg_flags

    cdef struct mmsghdr:
        msghdr msg_hdr
        unsigned int msg_len


cdef class PacketReceiver:
    cdef int _fd                     # the socket's descriptor; the Python socket owns it
    cdef int _batch                  # datagrams one recvmmsg takes at most
    cdef uint8_t* _buffers           # _batch datagram buffers of DATAGRAM_BYTES each
    cdef mmsghdr* _headers
    cdef iovec* _vectors

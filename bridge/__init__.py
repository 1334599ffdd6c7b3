"""The bridge between the extranet and the isolated internal network.

``bridge.diode`` models the one-way optical gate (单向光闸); ``bridge.ferry``
the offline disc ferry (光盘刻录摆渡); ``bridge.audit`` the hash-chained record
of everything that crosses.
"""

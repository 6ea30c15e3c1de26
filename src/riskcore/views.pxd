# Read views of a RiskEngine (see views.pyx).
from riskcore.engine cimport RiskEngine

cdef object _aggregate_table(RiskEngine self, dict columns)

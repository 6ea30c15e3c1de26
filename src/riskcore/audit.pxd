# Audit of a RiskEngine (see audit.pyx).
from riskcore.engine cimport RiskEngine

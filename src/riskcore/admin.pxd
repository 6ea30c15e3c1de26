# Administration of a RiskEngine (see admin.pyx).
from riskcore.engine cimport RiskEngine

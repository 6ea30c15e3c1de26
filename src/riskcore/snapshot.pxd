# Snapshots of a RiskEngine (see snapshot.pyx).
from riskcore.engine cimport RiskEngine

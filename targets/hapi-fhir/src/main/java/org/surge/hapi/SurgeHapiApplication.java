package org.surge.hapi;

import ca.uhn.fhir.batch2.jobs.config.Batch2JobsConfig;
import ca.uhn.fhir.jpa.api.config.ThreadPoolFactoryConfig;
import ca.uhn.fhir.jpa.batch2.JpaBatch2Config;
import ca.uhn.fhir.jpa.config.HapiJpaConfig;
import ca.uhn.fhir.jpa.config.r4.JpaR4Config;
import ca.uhn.fhir.jpa.subscription.channel.config.SubscriptionChannelConfig;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.context.annotation.Import;

/**
 * surge's real target: the HAPI FHIR JPA server for R4, embedded in Spring
 * Boot, on PostgreSQL through HikariCP, with Prometheus metrics at
 * /actuator/prometheus. One process is one replica; cluster.sh runs several
 * behind HAProxy.
 *
 * <p>The imports are the smallest set HAPI's JPA server starts with: the R4
 * DAOs and providers (JpaR4Config), the JPA services the starter would
 * otherwise define itself (HapiJpaConfig: paging, stale-search cleanup),
 * and what Batch2 (reindexing, $expunge) needs to wire up.
 */
@SpringBootApplication
@Import({
    JpaR4Config.class,
    HapiJpaConfig.class,
    ThreadPoolFactoryConfig.class,
    JpaBatch2Config.class,
    Batch2JobsConfig.class,
    SubscriptionChannelConfig.class,
})
public class SurgeHapiApplication {
    public static void main(String[] args) {
        SpringApplication.run(SurgeHapiApplication.class, args);
    }
}

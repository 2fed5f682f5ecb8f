package org.surge.hapi;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.IValidationSupport;
import ca.uhn.fhir.interceptor.api.IInterceptorService;
import ca.uhn.fhir.jpa.api.config.JpaStorageSettings;
import ca.uhn.fhir.jpa.api.dao.IFhirSystemDao;
import ca.uhn.fhir.jpa.binary.api.IBinaryStorageSvc;
import ca.uhn.fhir.jpa.binary.interceptor.BinaryStorageInterceptor;
import ca.uhn.fhir.jpa.binstore.DatabaseBinaryContentStorageSvcImpl;
import ca.uhn.fhir.jpa.binstore.FilesystemBinaryStorageSvcImpl;
import ca.uhn.fhir.jpa.config.util.HapiEntityManagerFactoryUtil;
import ca.uhn.fhir.jpa.model.config.PartitionSettings;
import ca.uhn.fhir.jpa.model.dialect.HapiFhirPostgresDialect;
import ca.uhn.fhir.jpa.provider.JpaCapabilityStatementProvider;
import ca.uhn.fhir.jpa.provider.JpaSystemProvider;
import ca.uhn.fhir.jpa.search.DatabaseBackedPagingProvider;
import ca.uhn.fhir.rest.server.IncomingRequestAddressStrategy;
import ca.uhn.fhir.rest.server.RestfulServer;
import ca.uhn.fhir.rest.server.provider.ResourceProviderFactory;
import ca.uhn.fhir.rest.server.util.ISearchParamRegistry;
import jakarta.persistence.EntityManagerFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import javax.sql.DataSource;
import org.hl7.fhir.r4.model.Bundle;
import org.hl7.fhir.r4.model.Meta;
import org.springframework.beans.factory.annotation.Qualifier;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.beans.factory.config.ConfigurableListableBeanFactory;
import org.springframework.boot.web.servlet.ServletRegistrationBean;
import org.springframework.context.ApplicationContext;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;
import org.springframework.context.annotation.Primary;
import org.springframework.orm.jpa.JpaTransactionManager;
import org.springframework.orm.jpa.LocalContainerEntityManagerFactoryBean;

/**
 * The beans HAPI's JPA server expects its host application to supply: the
 * storage settings, the entity manager on Boot's HikariCP DataSource, the
 * Binary store, and the FHIR servlet at /fhir.
 */
@Configuration
public class FhirServerConfig {

    @Bean
    public JpaStorageSettings storageSettings() {
        JpaStorageSettings settings = new JpaStorageSettings();
        // Clients follow `next` links to any replica: searches and their
        // results live in the database (HFJ_SEARCH), which HAPI does by
        // default; nothing here changes that.
        settings.setAllowContainsSearches(true);
        return settings;
    }

    @Bean
    public PartitionSettings partitionSettings() {
        return new PartitionSettings();
    }

    @Primary
    @Bean
    public LocalContainerEntityManagerFactoryBean entityManagerFactory(
            ConfigurableListableBeanFactory beanFactory,
            FhirContext fhirContext,
            JpaStorageSettings settings,
            DataSource dataSource,
            @Value("${surge.reader:false}") boolean reader) {
        LocalContainerEntityManagerFactoryBean factory =
                HapiEntityManagerFactoryUtil.newEntityManagerFactory(beanFactory, fhirContext, settings);
        factory.setPersistenceUnitName("HAPI_PU");
        factory.setDataSource(dataSource);
        Map<String, Object> jpa = new HashMap<>();
        // HAPI's HibernatePropertiesProvider reads the dialect from here.
        jpa.put("hibernate.dialect", HapiFhirPostgresDialect.class.getName());
        // The first replica creates the schema; the cluster script starts it
        // alone so that the others find the tables made. A reader, on a
        // standby, cannot change a schema and finds it replayed.
        jpa.put("hibernate.hbm2ddl.auto", reader ? "none" : "update");
        jpa.put("hibernate.search.enabled", "false");
        jpa.put("hibernate.format_sql", "false");
        jpa.put("hibernate.show_sql", "false");
        jpa.put("hibernate.jdbc.batch_size", "20");
        jpa.put("hibernate.cache.use_query_cache", "false");
        jpa.put("hibernate.cache.use_second_level_cache", "false");
        jpa.put("hibernate.cache.use_structured_entries", "false");
        jpa.put("hibernate.cache.use_minimal_puts", "false");
        factory.setJpaPropertyMap(jpa);
        return factory;
    }

    @Primary
    @Bean
    public JpaTransactionManager transactionManager(EntityManagerFactory entityManagerFactory) {
        return new JpaTransactionManager(entityManagerFactory);
    }

    /**
     * Where Binary content goes: "db" keeps it in PostgreSQL, which every
     * replica reads; "fs" keeps it in this replica's own folder, HAPI's
     * filesystem store — the real form of "uploaded on one replica, missing
     * on the others" when the folder is not shared.
     */
    @Bean
    public IBinaryStorageSvc binaryStorageSvc(
            @Value("${surge.binary-storage:db}") String mode,
            @Value("${surge.binary-directory:}") String directory) throws Exception {
        switch (mode) {
            case "db": {
                DatabaseBinaryContentStorageSvcImpl svc = new DatabaseBinaryContentStorageSvcImpl();
                svc.setMinimumBinarySize(0);
                return svc;
            }
            case "fs": {
                if (directory.isEmpty()) {
                    throw new IllegalArgumentException("surge.binary-storage=fs needs surge.binary-directory");
                }
                Files.createDirectories(Path.of(directory));
                FilesystemBinaryStorageSvcImpl svc = new FilesystemBinaryStorageSvcImpl(directory);
                // Every upload goes to the folder, however small.
                svc.setMinimumBinarySize(0);
                return svc;
            }
            default:
                throw new IllegalArgumentException("surge.binary-storage must be db or fs, got '" + mode + "'");
        }
    }

    @Bean
    public ServletRegistrationBean<RestfulServer> fhirServlet(
            ApplicationContext context,
            FhirContext fhirContext,
            JpaStorageSettings settings,
            @Qualifier("myResourceProvidersR4") ResourceProviderFactory resourceProviders,
            JpaSystemProvider<Bundle, Meta> systemProvider,
            IFhirSystemDao<Bundle, Meta> systemDao,
            ISearchParamRegistry searchParamRegistry,
            IValidationSupport validationSupport,
            DatabaseBackedPagingProvider pagingProvider,
            IInterceptorService storageInterceptors,
            @Value("${surge.reader:false}") boolean reader) {
        // Binary content is moved out of the resource (to the database's blob
        // table or a folder) by this storage interceptor; HAPI defines it but
        // leaves registering it to the application.
        storageInterceptors.registerInterceptor(context.getBean(BinaryStorageInterceptor.class));

        RestfulServer server = new RestfulServer(fhirContext);
        server.registerProviders(resourceProviders.createProviders());
        server.registerProvider(systemProvider);
        // A search with a paging provider keeps its results in HFJ_SEARCH, a
        // write a reader on a standby cannot make; without one, HAPI answers
        // a search whole in one read-only transaction.
        if (!reader) {
            server.setPagingProvider(pagingProvider);
        }
        // Links (Location, paging `next`) name the address the client used,
        // i.e. the balancer's, so a page can be fetched from any replica.
        server.setServerAddressStrategy(new IncomingRequestAddressStrategy());
        server.setServerConformanceProvider(new JpaCapabilityStatementProvider(
                server, systemDao, settings, searchParamRegistry, validationSupport));

        ServletRegistrationBean<RestfulServer> registration = new ServletRegistrationBean<>(server, "/fhir/*");
        registration.setName("fhir");
        registration.setLoadOnStartup(1);
        return registration;
    }
}
